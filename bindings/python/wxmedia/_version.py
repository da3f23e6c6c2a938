"""The package version; its major.minor must equal the library's ``wxm_version()``."""

__version__ = "0.1.0"
