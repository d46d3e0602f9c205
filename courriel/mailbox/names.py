"""Folder names: validation, the INBOX rule, hierarchy, special-use attributes and the default folders.

Names are full paths with "/" as the hierarchy separator, stored as Unicode in NFC (modified
UTF-7 and UTF8=ACCEPT are the IMAP engine's business). INBOX is case-insensitive (RFC 3501
§5.1) and so is the first level of its children ("inbox/x" is "INBOX/x"), as mox does.
"""

from __future__ import annotations

import unicodedata

from courriel.mailbox.errors import InvalidFolderName, SpecialUseRefused

SEPARATOR = "/"
INBOX = "INBOX"
MAX_NAME_LENGTH = 1000
MAX_DEPTH = 32
# RFC 3501 §6.3.8: "*" and "%" are LIST wildcards; a name holding them could not be listed exactly.
_FORBIDDEN = frozenset("*%")

# RFC 6154 §2. \All and \Flagged name virtual folders, which this store does not compute.
SPECIAL_USES = {u.casefold(): u for u in ("\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash")}
VIRTUAL_SPECIAL_USES = frozenset({"\\all", "\\flagged"})

# Created by ensure_mailbox, with Exchange's names (DESIGN.md §3); all subscribed.
DEFAULT_FOLDERS: tuple[tuple[str, str | None], ...] = (
    (INBOX, None),
    ("Sent Items", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Deleted Items", "\\Trash"),
    ("Junk Email", "\\Junk"),
    ("Outbox", None),
)


def normalize_name(name: str, *, allow_trailing_separator: bool = False) -> str:
    """The stored form of a folder name; raises InvalidFolderName."""
    if allow_trailing_separator and name.endswith(SEPARATOR):
        # RFC 3501 §6.3.3: "foo/" declares the intent to create children; the folder is "foo".
        name = name[: -len(SEPARATOR)]
    name = unicodedata.normalize("NFC", name)
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidFolderName("mailbox name length out of bounds")
    if any(ch in _FORBIDDEN or ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in name):
        raise InvalidFolderName("mailbox name holds a character that is not allowed")
    if name.startswith("\\"):
        # Reserved: delivery reads a leading backslash as a special-use attribute (\Junk …).
        raise InvalidFolderName("mailbox name cannot start with a backslash")
    parts = name.split(SEPARATOR)
    if len(parts) > MAX_DEPTH:
        raise InvalidFolderName("mailbox hierarchy too deep")
    if any(not part for part in parts):
        raise InvalidFolderName("mailbox name has an empty level")
    if parts[0].casefold() == INBOX.casefold():
        parts[0] = INBOX
    return SEPARATOR.join(parts)


def parent_names(name: str) -> list[str]:
    """Every ancestor of a normalized name, shallowest first: "a/b/c" → ["a", "a/b"]."""
    parts = name.split(SEPARATOR)
    return [SEPARATOR.join(parts[:depth]) for depth in range(1, len(parts))]


def is_within(name: str, ancestor: str) -> bool:
    """True when `name` is `ancestor` itself or below it."""
    return name == ancestor or name.startswith(ancestor + SEPARATOR)


def canonical_special_use(attribute: str | None) -> str | None:
    """The stored spelling of a special-use attribute; raises SpecialUseRefused if unsupported."""
    if attribute is None:
        return None
    folded = attribute.casefold()
    if folded in SPECIAL_USES:
        return SPECIAL_USES[folded]
    if folded in VIRTUAL_SPECIAL_USES:
        raise SpecialUseRefused(f"{attribute} folders are not supported")
    raise SpecialUseRefused(f"unknown special-use attribute {attribute}")


def is_special_use_selector(folder: str) -> bool:
    """Delivery targets a folder by name, or by special use when it starts with a backslash."""
    return folder.startswith("\\")
