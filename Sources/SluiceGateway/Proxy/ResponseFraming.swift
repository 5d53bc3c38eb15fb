import SluiceHTTP1

/// How a replica's answer is framed for the client: HTTP/1.0 clients have no chunked encoding
/// (the body then ends with the connection), a body that runs until the replica closes is
/// chunked for HTTP/1.1 clients so their connection stays, and a chunked answer whose usage is
/// metered is re-chunked (the meter may drop usage-only events).
struct ResponseFraming: Equatable {
    var reframing: HeaderRewriter.BodyReframing = .none
    /// The client's connection must close after this answer.
    var mustClose = false

    init(_ head: HTTP1Head, clientMinorVersion: Int, untilClose: Bool, toHEAD: Bool, metered: Bool) {
        let hasBody = !toHEAD && head.status != 204 && head.status != 304
        if clientMinorVersion == 0 {
            if head.isChunked, !untilClose, hasBody {
                reframing = .unchunk
                mustClose = true
            } else if untilClose {
                mustClose = true
            }
        } else if untilClose {
            reframing = .chunk
        } else if head.isChunked, metered, hasBody, head.status >= 200 {
            reframing = .rechunk
        }
    }
}
