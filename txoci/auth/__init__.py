"""
Authentication and authorization for txoci (issue 5).

The pieces here are self-contained and not yet wired into the HTTP server:

- :mod:`txoci.auth.htpasswd` -- an Apache-compatible, bcrypt-only htpasswd file that is
  re-read when it changes, plus atomic ``add_user`` / ``remove_user`` for the ``txoci user`` CLI.
- :mod:`txoci.auth.cred` -- ``twisted.cred`` checker, avatar interface and realm.
- :mod:`txoci.auth.policy` -- per-repository policies with zot-compatible semantics.
- :mod:`txoci.auth.scope` -- the Docker token scope grammar (auth-scope.md) and its mapping onto
  policy actions.
- :mod:`txoci.auth.tokens` -- a JWT issuer and verifier (auth-jwt.md).
- :mod:`txoci.auth.ratelimit` -- failed-login rate limiting.

See docs/security.md for the model and the configuration schema.
"""
