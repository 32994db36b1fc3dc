#!/usr/bin/env python3
"""Prints the bytes an image in an OCI layout directory takes in a registry: its config and
its (compressed) layers, as a node pulls them.

    python3 deploy/check/oci-size.py DIR
"""

import json
import os
import sys


def main(layout):
    def blob(descriptor):
        return os.path.join(layout, "blobs", *descriptor["digest"].split(":"))

    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    with open(blob(index["manifests"][0])) as f:
        manifest = json.load(f)
    print(sum(os.path.getsize(blob(d)) for d in [manifest["config"], *manifest["layers"]]))


if __name__ == "__main__":
    main(sys.argv[1])
