"""The worker: claims training rounds and runs them; the one app package that calls the trainer.

Importing this package needs only the web app's dependencies; the training stack is imported by
the trainer subprocesses it starts (and by `base_policy` when it converts SmolLM2 once).
"""
