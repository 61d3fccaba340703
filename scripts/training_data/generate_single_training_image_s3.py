#!/usr/bin/env python3
"""Compatibility wrapper for the old `generate_single_training_image_s3.py` script.

It is now `actor-maker generate-single --json`.

Same positional arguments, same JSON result on stdout, so programs that spawn
the old script keep working. Exit codes: 0 all done, 1 some items failed,
2 bad input or configuration.
"""

import sys

from actor_maker.cli import main

if __name__ == "__main__":
    main(["generate-single", *sys.argv[1:], "--json"])
