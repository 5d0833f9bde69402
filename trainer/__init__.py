"""prefloop's trainer: reward models, policy optimisation and generation. Never imports `app`."""
