package dev.iotpipe.flink;

import java.io.Serializable;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What the day logic needs from Python's single definitions, as text (stream_job.day_spec writes it): the sensor
 * catalogue (iotcommon.sensors), the parts of each cumulative total, and the site zones (iotcommon.zones).
 *
 * <ul>
 *   <li>sensors: "TH1=C:mean;HVAC1=Wh:sum;Etot=Wh:cumulative;Mov1=count:count;..." (catalogue order)</li>
 *   <li>parts: "Etot=HVAC1+HVAC2+MiAC1+MiAC2;Wtot=W1"</li>
 *   <li>zones: "Europe/Athens" or "Europe/Athens;site-a=UTC,site-b=America/New_York" (default; overrides)</li>
 * </ul>
 */
final class DaySpec implements Serializable {
    private static final long serialVersionUID = 1L;

    enum Rule { MEAN, SUM, CUMULATIVE, COUNT }

    record Sensor(String name, String unit, Rule rule) implements Serializable {
    }

    private final Map<String, Sensor> sensors = new LinkedHashMap<>();
    private final Map<String, List<String>> parts = new HashMap<>();
    private final List<String> cumulative = new ArrayList<>();
    private final String defaultZone;
    private final Map<String, String> zoneOf = new HashMap<>();

    DaySpec(String sensorsText, String partsText, String zonesText) {
        for (String item : sensorsText.split(";")) {
            int eq = item.indexOf('=');
            int colon = item.lastIndexOf(':');
            if (eq <= 0 || colon < eq) {
                throw new IllegalArgumentException("bad sensor spec " + item + " in " + sensorsText);
            }
            String name = item.substring(0, eq);
            Rule rule = Rule.valueOf(item.substring(colon + 1).toUpperCase(java.util.Locale.ROOT));
            sensors.put(name, new Sensor(name, item.substring(eq + 1, colon), rule));
            if (rule == Rule.CUMULATIVE) {
                cumulative.add(name);
            }
        }
        for (String item : partsText.split(";")) {
            if (item.isEmpty()) {
                continue;
            }
            int eq = item.indexOf('=');
            parts.put(item.substring(0, eq), List.of(item.substring(eq + 1).split("\\+")));
        }
        String[] zones = zonesText.split(";", 2);
        defaultZone = zones[0];
        ZoneId.of(defaultZone);  // fails early on an unknown zone
        if (zones.length > 1) {
            for (String pair : zones[1].split(",")) {
                if (!pair.isEmpty()) {
                    int eq = pair.indexOf('=');
                    zoneOf.put(pair.substring(0, eq), pair.substring(eq + 1));
                    ZoneId.of(pair.substring(eq + 1));
                }
            }
        }
    }

    Sensor sensor(String name) {
        Sensor found = sensors.get(name);
        if (found == null) {
            throw new IllegalArgumentException("unknown sensor " + name);
        }
        return found;
    }

    /** The cumulative sensors, in catalogue order. */
    List<String> cumulative() {
        return cumulative;
    }

    List<String> parts(String total) {
        return parts.getOrDefault(total, List.of());
    }

    String zoneName(String site) {
        return zoneOf.getOrDefault(site, defaultZone);
    }
}
