import NIOCore

/// Tells HTTP/2 with prior knowledge from HTTP/1.1 on one cleartext port by the connection's
/// first bytes (RFC 9113 §3.3: an h2c client opens with the 24-byte preface, which no HTTP/1.1
/// request line can match), then puts the chosen protocol's handlers in its place and hands
/// them what it read. An HTTP/1.1 request differs at its first byte ("PRI" is not a method
/// anyone sends), so it waits for nothing.
final class PrefaceSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    /// Adds the handlers for HTTP/2 (true) or HTTP/1.1 (false) after this one.
    private let configure: (Bool) throws -> Void
    private var read: ByteBuffer?
    private var decided = false

    init(configure: @escaping (Bool) throws -> Void) {
        self.configure = configure
    }

    /// Whether `bytes` start the preface (`nil`: too few bytes to tell).
    static func isPreface(_ bytes: ByteBuffer) -> Bool? {
        let count = min(bytes.readableBytes, preface.count)
        guard bytes.readableBytesView.prefix(count).elementsEqual(preface.prefix(count)) else { return false }
        return count == preface.count ? true : nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !decided else { return context.fireChannelRead(data) }
        read = .unparsed(read, then: unwrapInboundIn(data), allocator: context.channel.allocator)
        guard let http2 = Self.isPreface(read!) else { return }
        decided = true
        do {
            try configure(http2)
        } catch {
            return context.close(promise: nil)
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if let read {
            self.read = nil
            context.fireChannelRead(wrapInboundOut(read))
            context.fireChannelReadComplete()
        }
        context.leavePipeline(removalToken: removalToken)
    }
}
