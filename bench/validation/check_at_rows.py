"""`mdf-guard check` with another number of rows to a history than the shipped 32.

`incontext.CHUNK_ROWS` is a constant, not a policy key: the size is a research choice
("Shorter or longer histories for the politics doses"). The cache keys readings by it, so
the two sizes never share an entry. Everything else is the command as shipped.

    python bench/validation/check_at_rows.py ROWS CHECK_ARGS...
"""

from __future__ import annotations

import sys

from mdf_guard import incontext
from mdf_guard.cli import main

if __name__ == "__main__":
    incontext.CHUNK_ROWS = int(sys.argv[1])
    main(["check", *sys.argv[2:]], prog_name="mdf-guard")
