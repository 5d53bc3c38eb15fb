/// sin(2πx) and log without Foundation (SluiceSimulation, like SluiceCore, imports none): series good to ~1e-12.
@inline(__always) func sin2pi(_ x: Double) -> Double {
    var r = x - (x).rounded(.down)  // [0, 1)
    var sign = 1.0
    if r >= 0.5 { r -= 0.5; sign = -1 }  // sin(π + a) = -sin(a)
    let a = r * 2 * Double.pi  // [0, π)
    let y = a > Double.pi / 2 ? Double.pi - a : a  // [0, π/2]
    let y2 = y * y
    var term = y
    var sum = y
    for n in stride(from: 2, through: 26, by: 2) {
        term *= -y2 / Double(n * (n + 1))
        sum += term
    }
    return sign * sum
}

@inline(__always) func log(_ x: Double) -> Double {
    // log(x) = 2·atanh((x-1)/(x+1)) after scaling x into [0.5, 1) by powers of two.
    precondition(x > 0)
    let exponent = x.exponent
    let m = x.significand / 2  // [0.5, 1)
    let e = Double(exponent + 1)
    let z = (m - 1) / (m + 1)
    let z2 = z * z
    var term = z
    var sum = z
    var n = 3.0
    while abs(term) > 1e-17 {
        term *= z2
        sum += term / n
        n += 2
    }
    return 2 * sum + e * 0.693_147_180_559_945_3
}
