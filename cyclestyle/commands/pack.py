"""`cyclestyle pack FOLDER OUTPUT`: an image folder -> a streaming data set for `data=stream`."""
from __future__ import annotations

import argparse
import os
import sys

DESCRIPTION = """\
Pack every image under FOLDER (searched recursively) into a litdata streaming data set at OUTPUT:
a local folder, or an object-store URL (s3://bucket/prefix or gs://bucket/prefix; credentials and
endpoint come from the usual environment variables, e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_ENDPOINT_URL). Images are decoded, turned upright (EXIF), converted to RGB, scaled down so their
longer side is at most --max-side, and stored compressed in 64 MB chunk files. Unreadable files are
skipped and listed. OUTPUT's index.json is written last: a data set without it is incomplete and is
replaced by the next run. Train from packed sets with `cyclestyle train data=stream data.a=OUTPUT ...`."""


def build_parser(prog: str = "cyclestyle pack") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("folder", help="image folder (jpg jpeg png webp bmp tif tiff, recursive)")
    parser.add_argument("output", help="local folder or s3:// / gs:// URL to write")
    parser.add_argument("--max-side", type=int, default=512,
                        help="scale images down so the longer side is at most this (default: 512; 0 keeps sizes)")
    parser.add_argument("--format", choices=("jpeg", "webp", "png", "original"), default="jpeg",
                        help="stored encoding (default: jpeg); original: each file's own bytes, checked, not re-encoded")
    parser.add_argument("--quality", type=int, default=95, help="jpeg/webp quality (default: 95)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help=f"worker processes (default: one per CPU core, {os.cpu_count()} here)")
    parser.add_argument("--overwrite", action="store_true", help="replace a data set already at OUTPUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..data.object_store import StorageError
    from ..data.packing import pack

    try:
        result = pack(args.folder, args.output, max_side=args.max_side or None, image_format=args.format,
                      quality=args.quality, workers=args.workers, overwrite=args.overwrite,
                      progress=not args.no_progress)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as error:
        print(f"cyclestyle pack: {error}", file=sys.stderr)
        return 2
    except StorageError as error:  # the store went away: nothing was published, a rerun starts clean
        print(f"cyclestyle pack: error: {error}", file=sys.stderr)
        return 1
    for path, reason in result.skipped:
        print(f"skipped unreadable image {path}: {reason}", file=sys.stderr)
    print(f"Packed {result.images} images into {args.output}"
          + (f" ({len(result.skipped)} unreadable files skipped, listed above)" if result.skipped else ""))
    return 0
