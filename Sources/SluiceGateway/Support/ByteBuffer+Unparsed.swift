import NIOCore

extension ByteBuffer {
    /// `read` after `rest`, the bytes a parser left unparsed (part of a head or a chunk line, or
    /// a pipelined request). With a rest, both are copied into a fresh buffer, so the old read
    /// buffer is freed instead of growing (and being copied) read after read.
    static func unparsed(_ rest: ByteBuffer?, then read: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard var rest else { return read }
        var read = read
        var merged = allocator.buffer(capacity: rest.readableBytes + read.readableBytes)
        merged.writeBuffer(&rest)
        merged.writeBuffer(&read)
        return merged
    }
}
