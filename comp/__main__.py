from comp.cli import entry

entry()
