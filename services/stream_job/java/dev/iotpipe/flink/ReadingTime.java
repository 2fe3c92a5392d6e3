package dev.iotpipe.flink;

import java.time.LocalDateTime;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

/** SQL: reading_time(v BYTES, grammar STRING, units STRING, limits STRING) -> TIMESTAMP(3): a canonical reading's
 * event time (UTC), or NULL when the message is not an accepted canonical reading (so a reading outside the window or
 * the value range never moves the watermark through this function). */
public class ReadingTime extends ScalarFunction {
    private static final long serialVersionUID = 1L;

    public @DataTypeHint("TIMESTAMP(3)") LocalDateTime eval(byte[] value, String grammar, String units,
                                                            String limits) {
        CanonicalReading reading = CanonicalReading.parse(value, grammar, units, limits);
        return reading == null ? null : reading.time;
    }
}
