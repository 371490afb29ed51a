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

/// A message already encoded, sent as its bytes: what a load generator or
/// a fuzzer sends in place of a typed message (with the `iamd.v1` codec's
/// `ProstCodec<Encoded, Answer>`), so that a call costs a copy of the
/// bytes and not an encoding. Decoding one skips every field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encoded(pub prost::bytes::Bytes);

impl prost::Message for Encoded {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
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
