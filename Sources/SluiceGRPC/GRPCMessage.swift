import SwiftProtobuf

/// gRPC's length-prefixed message framing (a compressed flag byte, a 4-byte big-endian length,
/// the message): what a unary call's body holds.
public enum GRPCMessage {
    /// Where the one uncompressed message of `body` lies; nil for anything else (compressed,
    /// several messages, a short body), which the gateway passes on unread.
    public static func messageRange(in body: UnsafeRawBufferPointer) -> Range<Int>? {
        guard body.count >= 5, body[0] == 0 else { return nil }
        let length = Int(body[1]) << 24 | Int(body[2]) << 16 | Int(body[3]) << 8 | Int(body[4])
        guard body.count == 5 + length else { return nil }
        return 5..<body.count
    }

    /// The one message of a unary call's `body`, decoded in place (the body is not copied);
    /// nil when it is not one uncompressed message of type `M`.
    public static func decode<M: Message>(_: M.Type, from body: UnsafeRawBufferPointer) -> M? {
        guard let range = messageRange(in: body) else { return nil }
        var message = M()
        do {
            try message.merge(serializedBytes: UnsafeRawBufferPointer(rebasing: body[range]).bytes)
        } catch {
            return nil
        }
        return message
    }

    /// `message` framed, uncompressed.
    public static func framed(_ message: [UInt8]) -> [UInt8] {
        let length = UInt32(message.count)
        return [0, UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)] + message
    }
}
