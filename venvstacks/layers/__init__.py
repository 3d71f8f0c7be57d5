"""A layer's environment on disk: creating it and installing from its lock, then wiring it to the
layers below (sitecustomize chain, layer config, pyvenv.cfg, shared-library links and the
bin/python script)."""
