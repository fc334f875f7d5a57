"""The one exception a user's mistake in the sweep file becomes (kept free of pydantic, so that
step processes that only format or check parameters do not pay for importing it)."""


class ConfigError(Exception):
    """A mistake in the sweep file: the message names the file, the key and the fix."""
