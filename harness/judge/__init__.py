"""The trusted side: starts contestants (sandbox.py), talks to them (session.py), drives the gates (runner.py),
lists modules (catalog.py) and finds the base branch's versions (base_branch.py). Never imports a module file."""
