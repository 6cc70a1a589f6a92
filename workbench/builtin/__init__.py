"""The built-in, offline side of the workbench: generated tasks (``wordproblems``, ``quantnli``), the offline
teacher that answers them (``builtin``), and the recipe the demo trains with. They register through the same
entry points a third-party package would use, so no lower stage imports this one."""
