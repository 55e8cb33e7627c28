"""A plugin whose dependency is not installed (for the registry's install hint)."""
import a_package_that_is_not_installed  # noqa: F401
