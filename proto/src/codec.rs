//! The codec every generated service and client uses: prost encoding with smaller
//! starting buffers than tonic's.
//!
//! tonic starts each message's encode and decode buffer at 8 KiB. etcd requests and
//! answers are mostly a few hundred bytes, and an 8 KiB block is beyond glibc's
//! per-thread cache, so every RPC paid two trips through the general allocator (the
//! 200-client put profile: `Streaming::new_request` and `Grpc::map_response` in
//! `malloc`, with `_int_malloc`, `unlink_chunk` and `malloc_consolidate` near the top).
//! A buffer still grows to whatever a message needs.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::ProstCodec;

/// Starting size of an encode or decode buffer: within glibc's thread cache
/// (1,032 bytes) and enough for a typical put, range-of-one or watch event.
pub const BUFFER_BYTES: usize = 1024;

/// Bytes a streaming encoder gathers before yielding (tonic's default).
pub const YIELD_THRESHOLD: usize = 32 * 1024;

/// [`ProstCodec`] with [`BUFFER_BYTES`] buffers.
#[derive(Debug, Clone, Copy)]
pub struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        SmallBufferCodec(PhantomData)
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD)
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = <ProstCodec<T, U> as Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
