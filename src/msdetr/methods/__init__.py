"""Training methods as registered units (`msdetr.methods.registry`); typed contracts in `contracts`."""
