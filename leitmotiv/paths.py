"""File paths whose names are not valid UTF-8: kept faithfully, shown readably.

On POSIX a file name is bytes.  Python hands a name that is not valid UTF-8 (a
Latin-1 name copied from an old camera card or a zip archive, say) to the program as
a ``str`` in which each undecodable byte is a lone surrogate (``surrogateescape``):
such a string opens the file again, but it cannot be encoded as UTF-8, so neither a
database text column nor a terminal, a JSON document or a web page takes it as it is.

- :func:`to_stored` and :func:`from_stored` map a path to the text the store keeps and
  back, losslessly.  A path that is valid UTF-8 is stored unchanged (so stores written
  before this module read the same); any other path is stored as :data:`BYTES_PREFIX`
  followed by its bytes, percent-encoded.  The prefix never starts a stored path of
  the ordinary kind, because those are absolute (they start with ``/``).
- :func:`shown` is what a person or a script reads: every undecodable byte becomes
  U+FFFD, the replacement character (:func:`shown_data` does it to every string of a
  page or a JSON document).  Text streams reconfigured with the error
  handler :data:`SHOWN_ERRORS` do the same to everything written to them (the command
  line's standard output and error, JSON included; "?" in encodings without U+FFFD).
"""

from __future__ import annotations

import codecs
import os
from typing import Any
from urllib.parse import quote_from_bytes, unquote_to_bytes

__all__ = ["BYTES_PREFIX", "SHOWN_ERRORS", "from_stored", "shown", "shown_data", "to_stored"]

#: Start of the stored form of a path that is not valid UTF-8.
BYTES_PREFIX = "bytes:"

#: Name of the codec error handler that writes U+FFFD for each character a stream
#: cannot encode (``stream.reconfigure(errors=SHOWN_ERRORS)``).
SHOWN_ERRORS = "leitmotiv.shown"

_UTF8 = ("utf-8", "utf8")

# Printable ASCII stays readable in the stored form; "%" is the escape itself.
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def _replace(error: UnicodeError) -> tuple[bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    # Encoders take only ASCII text as a replacement, so give U+FFFD as UTF-8 bytes
    # (and "?" to a stream in another encoding, which has no U+FFFD to show).
    mark = "\ufffd".encode() if error.encoding.lower() in _UTF8 else b"?"
    return mark * (error.end - error.start), error.end


codecs.register_error(SHOWN_ERRORS, _replace)


def _is_text(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_stored(path: str) -> str:
    """The text the store keeps for ``path`` (a ``str`` as the OS functions give it).

    Parameters
    ----------
    path : str
        An absolute path; undecodable bytes of its name are lone surrogates.

    Returns
    -------
    str
        ``path`` itself when it is valid UTF-8, else :data:`BYTES_PREFIX` and its
        percent-encoded bytes; always valid UTF-8 without NUL characters.

    Raises
    ------
    UnicodeEncodeError
        For a surrogate that stands for no byte (no file name holds one).
    """
    if _is_text(path):
        return path
    return BYTES_PREFIX + quote_from_bytes(os.fsencode(path), safe=_SAFE)


def from_stored(text: str) -> str:
    """The path :func:`to_stored` made ``text`` from (its exact inverse)."""
    if text.startswith(BYTES_PREFIX):
        return os.fsdecode(unquote_to_bytes(text[len(BYTES_PREFIX) :]))
    return text


def shown(path: str) -> str:
    """``path`` for display: each undecodable byte of a name becomes U+FFFD."""
    return path.encode("utf-8", errors=SHOWN_ERRORS).decode("utf-8")


def shown_data(data: Any) -> Any:
    """``data`` with :func:`shown` applied to every string in it, through dicts (keys
    too), lists and tuples; anything else is returned as it is."""
    if isinstance(data, str):
        return shown(data)
    if isinstance(data, dict):
        return {shown_data(key): shown_data(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return type(data)(shown_data(value) for value in data)
    return data
