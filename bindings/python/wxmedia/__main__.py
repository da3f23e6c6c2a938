"""``python -m wxmedia get MEDIA_ID -o FILE`` / ``python -m wxmedia upload TYPE FILE``."""

from .cli import run

if __name__ == "__main__":
    run()
