"""The probes both services answer alike: /health (liveness) and / (what the service is).

Each service adds its own /ready to the Blueprint: what "ready" means is its own.
"""

import marshmallow as ma
from flask import current_app
from marshmallow import fields

from .api import Blueprint


class HealthSchema(ma.Schema):
    status = fields.String(metadata={"example": "ok"})


class ServiceInfoSchema(ma.Schema):
    service = fields.String()
    version = fields.String()
    routes = fields.List(fields.String())


def probes_blueprint(service):
    """Return a "probes" Blueprint with /health and /, the latter naming service."""
    probes = Blueprint("probes", __name__, description="Liveness, readiness and discovery")

    @probes.get("/health")
    @probes.response(200, HealthSchema)
    def health():
        """Liveness: the process answers."""
        return {"status": "ok"}

    @probes.get("/")
    @probes.response(200, ServiceInfoSchema)
    def index():
        """Name the service and list its routes."""
        routes = {rule.rule for rule in current_app.url_map.iter_rules()}
        return {
            "service": service,
            "version": current_app.config["API_VERSION"],
            "routes": sorted(routes - {"/static/<path:filename>"}),
        }

    return probes
