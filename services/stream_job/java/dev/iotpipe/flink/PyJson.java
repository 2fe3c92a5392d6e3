package dev.iotpipe.flink;

import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;

/**
 * The bytes Python's iotcommon writes for a message (json.dumps with separators (",", ":"), ensure_ascii), so the
 * day logic's output is the same whichever side wrote it: floats as Python's repr (the shortest decimal that reads
 * back as the same double; JDK 17's Double.toString is not always the shortest), strings escaped as json.dumps does,
 * timestamps as iotcommon.days.iso_z. Also math.fsum (exact sum of doubles, correctly rounded).
 */
final class PyJson {
    private PyJson() {
    }

    /** Python's repr(x) of a finite double: "21.5", "22.0", "1e-05", "1.5e+16", "-0.0". */
    static String repr(double x) {
        if (Double.isNaN(x) || Double.isInfinite(x)) {
            throw new IllegalArgumentException("not a finite number: " + x);
        }
        String sign = (Double.doubleToRawLongBits(x) < 0) ? "-" : "";
        double a = Math.abs(x);
        if (a == 0.0) {
            return sign + "0.0";
        }
        BigDecimal shortest = shortest(a);
        String digits = shortest.unscaledValue().toString();
        int n = digits.length();
        int decpt = n - shortest.scale();  // value = 0.DIGITS x 10^decpt
        StringBuilder out = new StringBuilder(sign);
        if (decpt <= -4 || decpt > 16) {  // Python's 'r' format switches to an exponent here
            out.append(digits.charAt(0));
            if (n > 1) {
                out.append('.').append(digits, 1, n);
            }
            int exp = decpt - 1;
            out.append('e').append(exp < 0 ? '-' : '+');
            int absExp = Math.abs(exp);
            if (absExp < 10) {
                out.append('0');
            }
            out.append(absExp);
        } else if (decpt <= 0) {
            out.append("0.");
            out.append("0".repeat(-decpt)).append(digits);
        } else if (decpt < n) {
            out.append(digits, 0, decpt).append('.').append(digits, decpt, n);
        } else {
            out.append(digits).append("0".repeat(decpt - n)).append(".0");
        }
        return out.toString();
    }

    /** The shortest decimal that parses back to `a` (> 0); of two such, the nearer (then the even one). */
    private static BigDecimal shortest(double a) {
        BigDecimal exact = new BigDecimal(a);
        for (int p = 1; p <= 17; p++) {
            BigDecimal best = null;
            for (RoundingMode mode : new RoundingMode[] {RoundingMode.HALF_EVEN, RoundingMode.FLOOR,
                    RoundingMode.CEILING}) {
                BigDecimal candidate = exact.round(new MathContext(p, mode));
                if (candidate.signum() > 0 && Double.parseDouble(candidate.toString()) == a) {
                    if (best == null || candidate.subtract(exact).abs().compareTo(best.subtract(exact).abs()) < 0) {
                        best = candidate;
                    }
                }
            }
            if (best != null) {
                return best.stripTrailingZeros();
            }
        }
        return exact.round(MathContext.DECIMAL64).stripTrailingZeros();  // not reached: 17 digits always suffice
    }

    /** math.fsum: the correctly rounded sum of the values (Shewchuk's partials, Python's final half-way fix). */
    static double fsum(double[] values, int count) {
        double[] partials = new double[Math.max(4, count)];
        int used = 0;
        for (int k = 0; k < count; k++) {
            double x = values[k];
            int i = 0;
            for (int j = 0; j < used; j++) {
                double y = partials[j];
                if (Math.abs(x) < Math.abs(y)) {
                    double t = x;
                    x = y;
                    y = t;
                }
                double hi = x + y;
                double lo = y - (hi - x);
                if (lo != 0.0) {
                    partials[i++] = lo;
                }
                x = hi;
            }
            if (i >= partials.length) {
                partials = java.util.Arrays.copyOf(partials, partials.length * 2);
            }
            partials[i] = x;
            used = i + 1;
        }
        double hi = 0.0;
        int n = used;
        if (n > 0) {
            hi = partials[--n];
            double lo = 0.0;
            while (n > 0) {
                double x = hi;
                double y = partials[--n];
                hi = x + y;
                double yr = hi - x;
                lo = y - yr;
                if (lo != 0.0) {
                    break;
                }
            }
            if (n > 0 && ((lo < 0.0 && partials[n - 1] < 0.0) || (lo > 0.0 && partials[n - 1] > 0.0))) {
                double y = lo * 2.0;
                double x = hi + y;
                double yr = x - hi;
                if (y == yr) {
                    hi = x;
                }
            }
        }
        return hi;
    }

    /** json.dumps of a string (ensure_ascii): quotes, backslashes, control and non-ASCII characters escaped. */
    static void string(StringBuilder out, String text) {
        out.append('"');
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    if (c < 0x20 || c > 0x7e) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    /** iotcommon.days.iso_z of epoch milliseconds: "2020-01-01T00:15:00Z", or with ".123" when there are ms. */
    static String isoZ(long epochMs) {
        int ms = (int) Math.floorMod(epochMs, 1000L);
        return isoZ(Math.floorDiv(epochMs, 1000L), ms, ms != 0);
    }

    /** iso_z of a wall-clock instant: Python's datetime has microseconds, so any sub-second part shows as ".mmm". */
    static String isoZ(Instant now) {
        return isoZ(now.getEpochSecond(), now.getNano() / 1_000_000, now.getNano() != 0);
    }

    private static String isoZ(long epochSecond, int ms, boolean withMs) {
        LocalDateTime t = LocalDateTime.ofEpochSecond(epochSecond, 0, ZoneOffset.UTC);
        StringBuilder out = new StringBuilder(24);
        pad(out, t.getYear(), 4).append('-');
        pad(out, t.getMonthValue(), 2).append('-');
        pad(out, t.getDayOfMonth(), 2).append('T');
        pad(out, t.getHour(), 2).append(':');
        pad(out, t.getMinute(), 2).append(':');
        pad(out, t.getSecond(), 2);
        if (withMs) {
            out.append('.');
            pad(out, ms, 3);
        }
        return out.append('Z').toString();
    }

    private static StringBuilder pad(StringBuilder out, int value, int width) {
        String digits = Integer.toString(value);
        for (int i = digits.length(); i < width; i++) {
            out.append('0');
        }
        return out.append(digits);
    }
}
