import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.kubernetes.operator.api.FlinkDeployment;
import org.apache.flink.kubernetes.operator.config.FlinkConfigManager;
import org.apache.flink.kubernetes.operator.validation.DefaultValidator;

/**
 * Runs the Flink Kubernetes Operator's DefaultValidator on FlinkDeployments: reads a JSON array of them from stdin and
 * writes one line per object, "OK" or "ERROR <message>", to the file named by the first argument (stdout carries the
 * operator's log lines). Exit 0 when every object could be read.
 */
public final class Validate {
    private Validate() {}

    public static void main(String[] args) throws Exception {
        ObjectMapper mapper = new ObjectMapper().configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, true);
        DefaultValidator validator = new DefaultValidator(new FlinkConfigManager(new Configuration()));
        InputStream in = System.in;
        JsonNode items = mapper.readTree(in);
        List<String> verdicts = new ArrayList<>();
        for (JsonNode item : items) {
            FlinkDeployment fd = mapper.treeToValue(item, FlinkDeployment.class);
            Optional<String> error = validator.validateDeployment(fd);
            verdicts.add(error.map(e -> "ERROR " + e.replace('\n', ' ')).orElse("OK"));
        }
        Files.write(Path.of(args[0]), verdicts, StandardCharsets.UTF_8);
        System.exit(0); // the config manager's cache threads would keep the JVM alive
    }
}
