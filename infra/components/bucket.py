"""The data bucket: training data under new_ML_data/, the DVC remote under DVC_Artefacts/.

Protected from destroy (`protect`). Private and encrypted by construction: versioning, SSE-KMS
with a bucket key, all four public-access blocks, BucketOwnerEnforced (no ACLs), a policy that
denies any request not made over TLS, and a lifecycle that expires noncurrent versions and
abandoned multipart uploads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_aws as aws

DATA_PREFIX: Final = "new_ML_data/"
DVC_PREFIX: Final = "DVC_Artefacts/"
ABORT_MULTIPART_DAYS: Final = 7


@dataclass(frozen=True)
class DataBucketArgs:
    bucket_name: str
    noncurrent_version_days: int


def tls_only_policy(bucket_arn: str) -> str:
    """Deny every S3 action on the bucket and its objects unless the request uses TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        },
        sort_keys=True,
    )


class DataBucket(pulumi.ComponentResource):
    """The S3 bucket and the settings that keep it private, encrypted and versioned."""

    bucket: aws.s3.Bucket
    name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: DataBucketArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("predict-buy:storage:DataBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # Protected: `pulumi destroy` (or dropping it from the program) fails instead of deleting
        # the training data and the DVC remote; an administrator must unprotect it on purpose.
        self.bucket = aws.s3.Bucket(
            name,
            bucket=args.bucket_name,
            force_destroy=False,
            opts=pulumi.ResourceOptions(parent=self, protect=True),
        )
        bucket_name = self.bucket.bucket
        self.name = bucket_name
        self.arn = self.bucket.arn

        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket_name,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket_name,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket_name,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=child,
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket_name,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms"
                    ),
                    # One KMS data key per bucket instead of one request per object: cheaper.
                    bucket_key_enabled=True,
                )
            ],
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket_name,
            policy=self.bucket.arn.apply(tls_only_policy),
            # S3 rejects a bucket policy while the public-access block is still being applied.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access, ownership]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket_name,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=args.noncurrent_version_days
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=ABORT_MULTIPART_DAYS
                    ),
                )
            ],
            # A lifecycle on noncurrent versions needs versioning switched on first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        for prefix in (DATA_PREFIX, DVC_PREFIX):
            # Zero-byte "folder" objects, as the original Terraform created, so the prefixes show.
            aws.s3.BucketObjectv2(
                f"{name}-{prefix.rstrip('/').lower().replace('_', '-')}",
                bucket=bucket_name,
                key=prefix,
                content="",
                opts=pulumi.ResourceOptions(parent=self, depends_on=[encryption, versioning]),
            )

        self.register_outputs({"name": self.name, "arn": self.arn})
