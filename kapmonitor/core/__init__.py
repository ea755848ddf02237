"""The ground floor: the vocabulary every other layer speaks.

Measurements and their flags (:mod:`.model`), the parameter codes and their physical ranges
(:mod:`.codes`), the user-error type (:mod:`.errors`), the hub that carries items between threads
(:mod:`.hub`), device names (:mod:`.device_spec`), the NIBP schedule, markers and the discharge
criteria. Nothing here imports another kapmonitor package: ``devices/`` and ``alarms/`` build on
it, the application (runner, record, review, export, command line) builds on those, and ``ui/``
sits on top. The order is an import-linter ``layers`` contract in pyproject.toml.
"""
