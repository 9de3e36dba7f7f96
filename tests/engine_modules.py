"""Code that imports every engine module in a fresh interpreter (the headless tests).

A module that exists only for an optional extra (Flower) is imported when its package is
installed and passed over otherwise: the engine core must not need it.
"""

#: engine module → the package of the optional extra it needs
OPTIONAL = {"fedsim_app.federated.flower_app": "flwr",
            "fedsim_app.federated.flower_secagg": "flwr",
            "fedsim_app.federated.flower_worker": "flwr"}

IMPORT_ALL = f"""
import importlib, importlib.util, pkgutil
import fedsim_app
for m in pkgutil.walk_packages(fedsim_app.__path__, 'fedsim_app.'):
    needs = {OPTIONAL!r}.get(m.name)
    if m.name.endswith('__main__') or (needs and importlib.util.find_spec(needs) is None):
        continue
    importlib.import_module(m.name)
"""
