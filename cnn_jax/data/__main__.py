"""Prepares TFDS datasets from local files, for machines that cannot download.

  python -m cnn_jax.data prepare fashion_mnist --from-dir /usr/share/datasets/fashion-mnist
  python -m cnn_jax.data prepare cifar10 --from-dir ~/Downloads --data-dir /data/tfds
  python -m cnn_jax.data prepare mnist1d
  python -m cnn_jax.data prepare imagenet2012 --from-dir /data/imagenet_manual
  python -m cnn_jax.data prepare imagenette --download

Afterwards ``tfds.load(name, data_dir=...)`` and ``cnn_jax.data.load`` read the dataset
without network.
"""

from __future__ import annotations

import argparse
import sys
import time

from cnn_jax.data import catalog, tfds_data


def main(argv: list[str] | None = None) -> int:
  """Runs the command line; returns the exit status (0 ok, 1 failed, 2 usage error)."""
  parser = argparse.ArgumentParser(prog='python -m cnn_jax.data', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest='command', required=True)
  prep = commands.add_parser(
      'prepare', help='build a TFDS dataset from local files (or generate / download it)')
  prep.add_argument('name', choices=sorted(catalog.DATASETS))
  prep.add_argument('--from-dir', default='',
                    help='local source files: MNIST-format IDX files (gz or not) for '
                         'mnist/fashion_mnist, the CIFAR python or binary archive (packed '
                         'or extracted) for cifar10/100, TFDS manual_dir for imagenet2012')
  prep.add_argument('--data-dir', default='',
                    help='TFDS data folder (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)')
  prep.add_argument('--download', action='store_true',
                    help='let TFDS download the dataset (needs network)')
  prep.add_argument('--file-format', default='array_record',
                    choices=('array_record', 'tfrecord'),
                    help='array_record: random access (tfds.data_source, grain, streaming), '
                         'read without TensorFlow; tfrecord: tfds.load / tf.data')
  args = parser.parse_args(argv)

  start = time.perf_counter()
  try:
    builder = tfds_data.prepare(args.name, data_dir=args.data_dir, from_dir=args.from_dir,
                                download=args.download, file_format=args.file_format)
  except (OSError, ValueError) as e:  # missing or failing source files: no traceback
    print(f'prepare {args.name} failed: {e}', file=sys.stderr)
    return 1
  splits = ', '.join(f'{name} {split.num_examples}'
                     for name, split in sorted(builder.info.splits.items()))
  print(f'{args.name} {builder.version} ready in {builder.data_dir} ({splits} examples, '
        f'{time.perf_counter() - start:.1f} s)')
  for path, digest in tfds_data.sources(builder).items():
    print(f'  sha256 {digest}  {path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
