package dev.iotpipe.flink;

import java.time.LocalDate;

/** Epoch milliseconds of the day operator's time texts, floored, without java.time's parsers (hot path). */
final class Times {
    private Times() {
    }

    /**
     * "2020-01-01T00:15:00Z", "2020-01-01T00:15:00.123456Z" (a reading's ts: RFC 3339 UTC) or "2020-10-05 21:15:00.000"
     * (a clock as the SQL writes a TIMESTAMP(3): UTC, the job's local time zone): stream_job.job.epoch_ms.
     */
    static long epochMs(String text) {
        int year = num(text, 0, 4);
        int month = num(text, 5, 7);
        int day = num(text, 8, 10);
        char sep = text.charAt(10);
        if (sep != 'T' && sep != ' ') {
            throw new IllegalArgumentException("not a timestamp: " + text);
        }
        long seconds = LocalDate.of(year, month, day).toEpochDay() * 86_400L
                + num(text, 11, 13) * 3600L + num(text, 14, 16) * 60L + num(text, 17, 19);
        int ms = 0;
        if (text.length() > 19 && text.charAt(19) == '.') {
            int digits = 0;
            for (int i = 20; i < text.length() && digits < 3 && Character.isDigit(text.charAt(i)); i++, digits++) {
                ms = ms * 10 + (text.charAt(i) - '0');
            }
            for (; digits < 3; digits++) {
                ms *= 10;
            }
        }
        return seconds * 1000L + ms;
    }

    private static int num(String text, int from, int to) {
        return Integer.parseInt(text, from, to, 10);
    }
}
