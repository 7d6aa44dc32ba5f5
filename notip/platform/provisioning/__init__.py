"""The Provisioning Service stand-in — `notip provisioning`.

Modules: `settings` (environment), `service` (the nursery tree; start here),
`onboarding` (the onboarding flow and its error mapping), `app` (HTTP routes, metrics,
audit).
"""
