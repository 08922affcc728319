"""Errors the Pulumi program raises, each naming what was wrong, where, and how to fix it.

    pulumi.RunError          shown by the Pulumi CLI as a plain message, without a traceback
     └── InfraError          base of everything below
          ├── StackConfigError     a stack setting is missing or invalid (names the config key)
          ├── ReleaseError         version not SemVer, version taken by other content, no git commit
          ├── ModelArtefactError   the model in the build context is missing or corrupt
          ├── PromotionCheckError  prod and nonprod disagree on the version or the image digest
          └── RuntimeImageError    the runtime was given an image that is not pinned by digest

The modules that run as their own processes (from a Command or a workflow step) keep their own
errors, each a RuntimeError printed as one line by their CLI:
    infra.promote.PromotionError          promotion refused or not verifiable (no evidence...)
    infra.tag_image.TagImageError         the commit's tag could not be added
    infra.image_scan.ImageScanError       ECR's scan unfinished, unreadable or over the threshold
    infra.release_evidence.EvidenceError  verified-<version> could not be written
"""

from __future__ import annotations

import pulumi


class InfraError(pulumi.RunError):
    """Base of the errors the predict-buy Pulumi program raises on purpose."""


class StackConfigError(InfraError):
    """A stack setting (`pulumi config`) is missing or has a value that is not allowed."""


class ReleaseError(InfraError):
    """The release cannot be published: bad version, version already taken, or no git commit."""


class ModelArtefactError(InfraError):
    """The model artefact the image would ship is missing or does not match its metadata."""


class PromotionCheckError(InfraError):
    """Prod refuses a promotion: versions differ or the digest that landed is not nonprod's."""


class RuntimeImageError(InfraError):
    """The ECS runtime would run an image reference that is not `repository@sha256:...`."""
