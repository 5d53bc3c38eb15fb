extension StringProtocol {
    /// Without leading and trailing spaces and tabs (header list syntax, RFC 9110 §5.6.1).
    func trimmedSpaces() -> SubSequence {
        var start = startIndex
        var end = endIndex
        while start < end, self[start] == " " || self[start] == "\t" { start = index(after: start) }
        while end > start {
            let before = index(before: end)
            guard self[before] == " " || self[before] == "\t" else { break }
            end = before
        }
        return self[start..<end]
    }
}
