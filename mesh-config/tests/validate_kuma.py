"""Validates Kuma resources against the openAPIV3Schema of Kuma's own CRDs, unknown fields refused.

Usage: validate_kuma.py CRD_DIR [CRD_DIR ...] -- RESOURCE.yaml [RESOURCE.yaml ...]

Each resource is checked against the CRD of its kind in every CRD_DIR (one per Kuma line).

The API server prunes fields a structural schema does not name, and `kubectl apply` (whose
field validation is Strict by default since Kubernetes 1.27) refuses them. JSON Schema instead
allows any property it does not forbid, so every object schema that lists `properties`, and
neither `additionalProperties` nor `x-kubernetes-preserve-unknown-fields: true`, is closed with
`additionalProperties: false`. `metadata` is left open (the API server checks ObjectMeta), and
`x-kubernetes-int-or-string` is already spelled as `anyOf` in these CRDs.
"""

import sys

import jsonschema
import yaml


def close(schema):
    if not isinstance(schema, dict):
        return schema
    if schema.get("x-kubernetes-preserve-unknown-fields") is True:
        return schema
    closed = {}
    for key, value in schema.items():
        if key == "properties":
            closed[key] = {name: close(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            closed[key] = close(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            closed[key] = [close(sub) for sub in value]
        else:
            closed[key] = value
    if "properties" in schema and "additionalProperties" not in schema:
        closed["additionalProperties"] = False
    return closed


def load_crds(directory):
    import glob
    import os

    schemas = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        with open(path) as f:
            crd = yaml.safe_load(f)
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = close(version["schema"]["openAPIV3Schema"])
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def main(argv):
    split = argv.index("--")
    crd_dirs, resources = argv[:split], argv[split + 1 :]
    lines = [(d, load_crds(d)) for d in crd_dirs]
    failures = 0
    checked = 0
    for path in resources:
        with open(path) as f:
            documents = [d for d in yaml.safe_load_all(f) if d is not None]
        # `kubectl get -o yaml` wraps objects in a List.
        documents = [
            item
            for d in documents
            for item in (d.get("items", []) if d.get("kind") == "List" else [d])
        ]
        for doc in documents:
            key = (doc.get("apiVersion"), doc.get("kind"))
            name = f"{path}: {key[1]} {doc.get('metadata', {}).get('name')}"
            for directory, schemas in lines:
                schema = schemas.get(key)
                if schema is None:
                    print(f"{name}: no CRD for {key} in {directory}")
                    failures += 1
                    continue
                validator = jsonschema.Draft7Validator(schema)
                for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
                    where = ".".join(str(p) for p in error.absolute_path)
                    print(f"{name} ({directory}): {where}: {error.message}")
                    failures += 1
                checked += 1
    print(f"{checked} checked, {failures} failed")
    return 1 if failures or not checked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
