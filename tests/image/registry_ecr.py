"""The three ECR calls infra.tag_image makes, answered by a registry's HTTP API (OCI distribution).

CI tags the pushed image by commit with `python -m infra.tag_image`, whose code talks to ECR
through a boto3 client. Here the image lives in Debian's docker-registry, so this client turns
DescribeImages, BatchGetImage and PutImage into manifest HEAD, GET and PUT requests: the tagging
logic under test is CI's own (`infra.tag_image.main`), only the transport differs. Errors come
back as botocore's ClientError with ECR's codes, as boto3 raises them.
"""

from __future__ import annotations

from typing import Any

import httpx
from botocore.exceptions import ClientError

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)


def _error(code: str, operation: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class RegistryAsEcr:
    """An ECR-shaped client (boto3's argument names) for one registry at `host:port`, plain HTTP."""

    def __init__(self, registry: str) -> None:
        self.base = f"http://{registry}/v2"
        self.http = httpx.Client(timeout=30, headers={"Accept": ", ".join(MANIFEST_TYPES)})

    def close(self) -> None:
        self.http.close()

    def _manifest_url(self, repository: str, reference: str) -> str:
        return f"{self.base}/{repository}/manifests/{reference}"

    def describe_images(self, repositoryName: str, imageIds: list[dict[str, str]]) -> Any:
        reference = imageIds[0].get("imageTag") or imageIds[0]["imageDigest"]
        answer = self.http.head(self._manifest_url(repositoryName, reference))
        if answer.status_code == 404:
            raise _error("ImageNotFoundException", "DescribeImages", f"{reference} not found")
        answer.raise_for_status()
        return {"imageDetails": [{"imageDigest": answer.headers["Docker-Content-Digest"]}]}

    def batch_get_image(
        self,
        repositoryName: str,
        imageIds: list[dict[str, str]],
        acceptedMediaTypes: list[str],
    ) -> Any:
        digest = imageIds[0]["imageDigest"]
        answer = self.http.get(
            self._manifest_url(repositoryName, digest),
            headers={"Accept": ", ".join(acceptedMediaTypes)},
        )
        if answer.status_code == 404:
            return {"images": [], "failures": [{"failureReason": "Requested image not found"}]}
        answer.raise_for_status()
        image = {
            "imageManifest": answer.text,
            "imageManifestMediaType": answer.headers["Content-Type"],
        }
        return {"images": [image], "failures": []}

    def put_image(
        self,
        repositoryName: str,
        imageManifest: str,
        imageTag: str,
        imageManifestMediaType: str,
    ) -> Any:
        answer = self.http.put(
            self._manifest_url(repositoryName, imageTag),
            content=imageManifest.encode(),
            headers={"Content-Type": imageManifestMediaType},
        )
        answer.raise_for_status()
        return {"image": {"imageId": {"imageDigest": answer.headers["Docker-Content-Digest"]}}}
