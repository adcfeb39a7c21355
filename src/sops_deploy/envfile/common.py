"""What the format modules share: their two exceptions and Go's idea of white space."""

from __future__ import annotations


class RenderError(Exception):
    """A value the chosen format cannot carry (reported as a Problem by the caller)."""


class Unparseable(ValueError):
    """The reader refuses the whole file (it returns an error, no values)."""


# Go's unicode.IsSpace.
GO_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000"
)
