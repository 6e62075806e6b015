"""`rbee`, the keeper: a terminal app and a scriptable CLI (`rbee --no-tui`) for the queen.

Importing this package must not import Textual: the headless CLI never loads it.
"""
