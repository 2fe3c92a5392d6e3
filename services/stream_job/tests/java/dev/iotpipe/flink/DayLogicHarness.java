package dev.iotpipe.flink;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Drives DayLogic from stdin, one command per line (tab-separated), so the Python unit tests run the same scenarios
 * against the Java day logic and the Python reference core (services/stream_job/tests/java_core.py). Test-only:
 * it lives under tests/java, so neither the job's jar nor its image holds it.
 *
 * <p>Arguments: sensors, parts, zones (DaySpec), lateness ms, the fixed wall clock (epoch ms) for emitted_at.
 * Commands: {@code R site sensor ts tsMs value seq clock sseq watermark part} (a reading; sseq -1: none),
 * {@code M site clock sseq watermark part} (a marker), {@code E site timestamp} (event-time timer),
 * {@code I site} (idle limit), {@code F site} (forget), {@code K site} (the Python core's state keys of the site).
 * Each answer: {@code O topic key value} lines, {@code T timer} lines, one {@code C late overflow days_closed
 * days_dropped revisions} line (counts since the last answer), then {@code .}.
 */
public final class DayLogicHarness {
    private DayLogicHarness() {
    }

    public static void main(String[] args) throws IOException {
        Instant now = Instant.ofEpochMilli(Long.parseLong(args[4]));
        DayLogic logic = new DayLogic(new DaySpec(args[0], args[1], args[2]), Long.parseLong(args[3]), () -> now);
        Map<String, SiteState> sites = new HashMap<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
        String line;
        while ((line = in.readLine()) != null) {
            String[] f = line.split("\t", -1);
            SiteState st = sites.computeIfAbsent(f[1], s -> new SiteState());
            List<DayLogic.Out> outs = new ArrayList<>();
            switch (f[0]) {
                case "R" -> {
                    long timer = logic.onReading(st, f[1], f[2], f[3], Long.parseLong(f[4]), Double.parseDouble(f[5]),
                            Long.parseLong(f[6]), Long.parseLong(f[7]), Long.parseLong(f[8]), Long.parseLong(f[9]),
                            Integer.parseInt(f[10]), outs);
                    if (timer != Long.MIN_VALUE) {
                        out.println("T\t" + timer);
                    }
                }
                case "M" -> logic.onMarker(st, f[1], Long.parseLong(f[2]), Long.parseLong(f[3]), Long.parseLong(f[4]),
                        Integer.parseInt(f[5]), outs);
                case "E" -> logic.onTimer(st, f[1], Long.parseLong(f[2]), outs);
                case "I" -> logic.onIdle(st, f[1], outs);
                case "F" -> sites.remove(f[1]);
                case "K" -> {
                    if (!st.days.isEmpty() || st.eodDay != null) {
                        out.println("K\tI");
                    }
                    if (st.hi != 0 || !st.subs.isEmpty()) {
                        out.println("K\tQ");
                    }
                    for (String day : st.days.keySet()) {
                        out.println("K\tD|" + day);
                    }
                }
                default -> throw new IllegalArgumentException("unknown command " + line);
            }
            for (DayLogic.Out o : outs) {
                out.println("O\t" + o.topic() + "\t" + o.key() + "\t" + new String(o.value(), StandardCharsets.UTF_8));
            }
            out.println("C\t" + logic.late + "\t" + logic.overflow + "\t" + logic.daysClosed + "\t"
                    + logic.daysDropped + "\t" + logic.revisions);
            logic.late = logic.overflow = logic.daysClosed = logic.daysDropped = logic.revisions = 0;
            out.println(".");
            out.flush();
        }
    }
}
