import NIOCore
import SluiceCore

/// The `model` a replica is sent, when it is not the one the client named: an alias's model
/// (`BodyInspection.modelRename`), or a provider's name for it (`OverflowRoute.divert`).
extension Exchange {
    /// `body` with its top-level `model` set to `name` (re-encoded through `JSONValue`, which
    /// keeps every other key's order and every number's text as sent), its new length noted;
    /// `body` itself if it is not a JSON object.
    func renamingModel(_ body: ByteBuffer, to name: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        guard let object = try? JSONValue.parse(Array(body.readableBytesView)), case .object = object else { return body }
        let data = object.setting("model", to: .string(name)).serialized
        var out = allocator.buffer(capacity: data.count)
        out.writeBytes(data)
        if contentLength != nil { rewrittenLength = out.readableBytes }
        return out
    }
}
