"""A child process of :func:`autopose.data.synthetic.generate`: renders one range of images.

    python -m autopose.data.synthetic._worker FOLDER SPLIT SEED WIDTH HEIGHT START STOP RESULT LEVEL

writes images START..STOP-1 of SPLIT into FOLDER and their annotations to RESULT (json).
"""

from __future__ import annotations

import sys

from autopose.data.synthetic.generator import render_range
from autopose.io import write_json


def main(argv: list[str]) -> int:
    folder, split, seed, width, height, start, stop, result, level = argv
    out = render_range(folder, split, int(seed), int(width), int(height), int(start), int(stop),
                       level)
    write_json(result, out, indent=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
