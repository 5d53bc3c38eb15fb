extension JSONFieldScanner {
    /// How many values (scalars, arrays and objects, at any depth) the JSON document in `bytes`
    /// holds, counted in one validating pass that allocates nothing; past `limit` the count stops
    /// at `limit + 1`. What a tree of the document (`JSONValue`) would cost grows with it, so a
    /// caller can decline to build one.
    public static func valueCount(in bytes: UnsafeRawBufferPointer, atMost limit: Int) throws(Failure) -> Int {
        var cursor = Cursor(bytes: bytes)
        var count = 0
        cursor.skipWhitespace()
        try cursor.count(&count, limit: limit, depth: 1)
        cursor.skipWhitespace()
        guard cursor.index == bytes.count else { throw Failure(offset: cursor.index, reason: "unexpected data after the JSON value") }
        return count
    }
}

extension JSONFieldScanner.Cursor {
    mutating func count(_ count: inout Int, limit: Int, depth: Int) throws(Failure) {
        guard count <= limit else { return try value(depth: depth) }
        count += 1
        switch peek() {
        case UInt8(ascii: "{"):
            try fields(depth: depth) { (cursor, _) throws(Failure) in try cursor.count(&count, limit: limit, depth: depth + 1) }
        case UInt8(ascii: "["):
            try array(depth: depth) { (cursor) throws(Failure) in try cursor.count(&count, limit: limit, depth: depth + 1) }
        default:
            try value(depth: depth)
        }
    }
}
