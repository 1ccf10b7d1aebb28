"""connect-devloop: the Atlassian Connect dev loop for add-ons written in any language."""

__version__ = "0.1.0"
__all__ = ["__version__"]
