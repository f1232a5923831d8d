"""One module per benchmark run: ``fidelity``, ``accuracy``, ``latency``, ``agent_step``, ``kv_reuse``.

Each takes plain arguments (and, except ``fidelity``, adds and reads its own prefixed options through
:mod:`..options`), builds its methods with :func:`..methods.build_methods` and returns one JSON-able
dict. A run never imports the CLI or ``run_all``; importing this package loads no model.
"""
