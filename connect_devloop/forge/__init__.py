"""Connect apps registered on Forge (../docs/forge.md): the manifest's Connect parts, their
offline checks, the Forge CLI the ``forge`` registrar drives, and the CLI's emulation used by
tests and ``connect-dev demo --forge``."""
