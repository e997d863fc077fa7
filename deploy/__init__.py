"""Running fedrisk for real: a local Flower federation on one machine, its TLS and node keys.

- :mod:`~fedrisk.deploy.pki` — the CA, the SuperLink's TLS certificate, SuperNode auth keys;
- :mod:`~fedrisk.deploy.local` — :class:`~fedrisk.deploy.local.LocalFederation`, a SuperLink and
  N SuperNodes as real processes on localhost (TLS and node authentication on).
"""
