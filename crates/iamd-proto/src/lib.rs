//! The generated protobuf and gRPC code of `iamd.v1` (compiled by protox,
//! no system protoc), its descriptor set for reflection, and its codec.

pub mod codec;

/// Generated protobuf and gRPC types of `iamd.v1`.
pub mod pb {
    #![allow(missing_docs, unreachable_pub, reason = "generated code")]
    #![allow(
        clippy::all,
        clippy::pedantic,
        clippy::allow_attributes_without_reason,
        reason = "generated code"
    )]
    tonic::include_proto!("iamd.v1");

    /// The encoded descriptor set of `iamd.v1`, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("iamd_descriptor");
}

impl pb::DeterminingStatement {
    /// `Allow` or `Deny`.
    pub fn effect_name(&self) -> &'static str {
        if self.effect() == pb::Effect::Deny {
            "Deny"
        } else {
            "Allow"
        }
    }

    /// As JSON (`policy`, `layer`, `statement`, `sid`, `effect`), for the
    /// decision log and the command line.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"policy": self.policy, "layer": self.layer, "statement": self.index,
            "sid": self.sid, "effect": self.effect_name()})
    }
}
