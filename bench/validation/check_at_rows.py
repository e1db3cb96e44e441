"""`mdf-guard check` with another number of rows to a history than the shipped 32.

`incontext.CHUNK_ROWS` is a constant, not a policy key: the size is a research choice
("Shorter or longer histories for the politics doses"). The readings' cache keys it, but
the whole-result cache of `repo_check` keys the code, not this runtime change, so every
cache is off here (MDF_GUARD_NO_CACHE=1): a first run of this script was served the 32-row
results. Everything else is the command as shipped.

    python bench/validation/check_at_rows.py ROWS CHECK_ARGS...
"""

from __future__ import annotations

import os
import sys

os.environ["MDF_GUARD_NO_CACHE"] = "1"

from mdf_guard import incontext  # noqa: E402
from mdf_guard.cli import main  # noqa: E402

if __name__ == "__main__":
    incontext.CHUNK_ROWS = int(sys.argv[1])
    main(["check", *sys.argv[2:]], prog_name="mdf-guard")
