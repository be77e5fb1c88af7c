"""One OpenAPI document for the public API: the gateway's own routes plus, for every forwarded
route, the operation as the owning service describes it (fetched from that service)."""
from __future__ import annotations

import re

RULE_PARAM = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")


def openapi_path(rule: str) -> str:
    """Flask's /sessions/<uuid:session_id> -> OpenAPI's /sessions/{session_id}."""
    return RULE_PARAM.sub(r"{\1}", rule)


def _rename_refs(node, service: str):
    if isinstance(node, dict):
        return {k: (v.replace("#/components/schemas/", f"#/components/schemas/{service}.")
                    if k == "$ref" and isinstance(v, str) else _rename_refs(v, service))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rename_refs(v, service) for v in node]
    return node


def merge(gateway_spec: dict, service_specs: dict[str, dict], routes, prefix: str) -> dict:
    """Copy each forwarded operation from its service's spec, its schemas namespaced by service
    (two services may both name a schema SessionOut). Operations a service does not describe
    are listed as missing rather than invented."""
    spec = dict(gateway_spec)
    paths = dict(spec.get("paths", {}))
    components = dict(spec.get("components", {}))
    schemas = dict(components.get("schemas", {}))
    missing = []
    for service, service_spec in service_specs.items():
        for name, schema in service_spec.get("components", {}).get("schemas", {}).items():
            schemas[f"{service}.{name}"] = _rename_refs(schema, service)
    for route in routes:
        service_spec = service_specs.get(route.service)
        path = openapi_path(route.rule)
        source = (service_spec or {}).get("paths", {}).get(path, {})
        target = paths.setdefault(prefix + path, {})
        for method in route.methods:
            operation = source.get(method.lower())
            if operation is None:
                missing.append(f"{method} {prefix}{path}")
                continue
            operation = _rename_refs(operation, route.service)
            operation["tags"] = [route.resource]
            if route.authenticated:
                operation["security"] = [{"bearerAuth": []}]
            else:
                operation["security"] = []
            target[method.lower()] = operation
        if "parameters" in source:
            target["parameters"] = source["parameters"]
    components["schemas"] = schemas
    components.setdefault("securitySchemes", {})["bearerAuth"] = {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "POST /api/v1/auth/login gives the access token"}
    spec["components"] = components
    spec["paths"] = paths
    if missing:
        spec["x-okrsnap-undocumented"] = missing
    return spec
