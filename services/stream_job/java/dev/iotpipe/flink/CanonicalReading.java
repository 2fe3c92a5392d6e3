package dev.iotpipe.flink;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.DateTimeException;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * One reading in the canonical compact form that iotcommon's Reading.encode writes, parsed in a single pass.
 *
 * <p>The grammar is not defined here: the SQL passes it as arguments (stream_job.sql.CANONICAL, a regex; the sensor
 * units "TH1=C;HVAC1=Wh;..."; the plausibility limits "ts=MIN_MS:MAX_MS;TH1=LOW:HIGH;...", iotcommon.limits.Limits.wire),
 * so Python stays the one definition. A message is accepted here iff the regex matches the whole text, the unit is
 * the sensor's, the instant exists (a real calendar date) and lies in the window (MIN_MS, MAX_MS] at millisecond
 * precision, the value (as a double) lies in the sensor's range [LOW, HIGH], and seq fits in a long: exactly what
 * iotcommon.messages.decode_reading accepts among messages of the canonical shape.
 */
final class CanonicalReading {
    final String site;
    final String sensor;
    final String ts;
    final String value;
    final String seq;
    final LocalDateTime time;
    /** "site,sensor,ts,value,seq": the start of the day logic's item (stream_job.sql.routed_view). */
    final String head;
    /** The day logic's key: the first hex digit of md5(site), as SQL's SUBSTRING(MD5(site) FROM 1 FOR 1). */
    final String bucket;

    private CanonicalReading(String[] parts, LocalDateTime time, String bucket) {
        // {"v":1,"site":"S","sensor":"X","ts":"T","value":N,"unit":"U","seq":Q} split on '"':
        //  0 1  2  3   4 5 6  7     8 9 10 11 12 13 14 15  16  17  18 19 20 21 22
        this.site = parts[5];
        this.sensor = parts[9];
        this.ts = parts[13];
        this.value = parts[16].substring(1, parts[16].length() - 1);
        this.seq = parts[22].substring(1, parts[22].length() - 1);
        this.time = time;
        this.head = site + ',' + sensor + ',' + ts + ',' + value + ',' + seq;
        this.bucket = bucket;
    }

    private static final class Grammar {
        final String regex;
        final String units;
        final String limits;
        final Pattern pattern;
        final Map<String, String> unitOf = new HashMap<>();
        final Map<String, double[]> rangeOf = new HashMap<>();
        long tsMinMs;
        long tsMaxMs;

        Grammar(String regex, String units, String limits) {
            this.regex = regex;
            this.units = units;
            this.limits = limits;
            this.pattern = Pattern.compile(regex);
            for (String pair : units.split(";")) {
                int eq = pair.indexOf('=');
                unitOf.put(pair.substring(0, eq), pair.substring(eq + 1));
            }
            for (String pair : limits.split(";")) {
                int eq = pair.indexOf('=');
                int colon = pair.indexOf(':', eq);
                String name = pair.substring(0, eq);
                String low = pair.substring(eq + 1, colon);
                String high = pair.substring(colon + 1);
                if (name.equals("ts")) {
                    tsMinMs = Long.parseLong(low);
                    tsMaxMs = Long.parseLong(high);
                } else {
                    rangeOf.put(name, new double[] {Double.parseDouble(low), Double.parseDouble(high)});
                }
            }
        }

        boolean sameAs(String regex, String units, String limits) {
            return this.regex.equals(regex) && this.units.equals(units) && this.limits.equals(limits);
        }
    }

    /** Per thread: the grammar in use and the last message parsed (the watermark and the parse see it in turn). */
    private static final class Memo {
        Grammar grammar;
        byte[] lastBytes;
        CanonicalReading lastResult;
        /** site -> bucket: an MD5 per site, not per message (cleared when it grows large). */
        final Map<String, String> bucketOf = new HashMap<>();

        String bucket(String site) {
            String found = bucketOf.get(site);
            if (found == null) {
                if (bucketOf.size() > 100_000) {
                    bucketOf.clear();
                }
                found = md5FirstHexDigit(site);
                bucketOf.put(site, found);
            }
            return found;
        }
    }

    static String md5FirstHexDigit(String text) {
        try {
            byte[] digest = MessageDigest.getInstance("MD5").digest(text.getBytes(StandardCharsets.UTF_8));
            return Character.toString(Character.forDigit((digest[0] >> 4) & 0xf, 16));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("no MD5", e);
        }
    }

    private static final ThreadLocal<Memo> MEMO = ThreadLocal.withInitial(Memo::new);

    /** The parsed reading, or null when the message is not a canonical reading. */
    static CanonicalReading parse(byte[] bytes, String regex, String units, String limits) {
        if (bytes == null) {
            return null;
        }
        Memo memo = MEMO.get();
        Grammar grammar = memo.grammar;
        if (grammar == null || !grammar.sameAs(regex, units, limits)) {
            grammar = memo.grammar = new Grammar(regex, units, limits);
            memo.lastBytes = null;
        }
        if (memo.lastBytes != null && Arrays.equals(memo.lastBytes, bytes)) {
            return memo.lastResult;
        }
        CanonicalReading result = parseText(new String(bytes, StandardCharsets.UTF_8), grammar, memo);
        memo.lastBytes = bytes.clone();
        memo.lastResult = result;
        return result;
    }

    private static CanonicalReading parseText(String text, Grammar grammar, Memo memo) {
        if (!grammar.pattern.matcher(text).matches()) {
            return null;
        }
        String[] parts = text.split("\"");
        if (parts.length != 23 || !parts[19].equals(grammar.unitOf.get(parts[9]))) {
            return null;
        }
        LocalDateTime time = instant(parts[13]);
        if (time == null) {
            return null;
        }
        long ms = time.toInstant(ZoneOffset.UTC).toEpochMilli();
        if (ms <= grammar.tsMinMs || ms > grammar.tsMaxMs) {
            return null;  // outside the window: the slow path dead-letters it, and it never moves the watermark
        }
        double[] range = grammar.rangeOf.get(parts[9]);
        double value = Double.parseDouble(parts[16].substring(1, parts[16].length() - 1));
        if (range == null || !(value >= range[0] && value <= range[1])) {
            return null;  // out of range (or infinite: an exponent beyond the double range)
        }
        String seq = parts[22].substring(1, parts[22].length() - 1);
        try {
            Long.parseLong(seq);
        } catch (NumberFormatException e) {
            return null;  // beyond a long
        }
        return new CanonicalReading(parts, time, memo.bucket(parts[5]));
    }

    /** "YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z" (shape already checked by the grammar), truncated to the millisecond. */
    private static LocalDateTime instant(String ts) {
        try {
            int nanos = 0;
            if (ts.charAt(19) == '.') {
                String digits = ts.substring(20, ts.length() - 1);
                int millis = Integer.parseInt((digits + "00").substring(0, 3));
                nanos = millis * 1_000_000;
            }
            return LocalDateTime.of(num(ts, 0, 4), num(ts, 5, 7), num(ts, 8, 10), num(ts, 11, 13), num(ts, 14, 16),
                    num(ts, 17, 19), nanos);
        } catch (DateTimeException | NumberFormatException | IndexOutOfBoundsException e) {
            return null;
        }
    }

    private static int num(String text, int from, int to) {
        return Integer.parseInt(text, from, to, 10);
    }
}
