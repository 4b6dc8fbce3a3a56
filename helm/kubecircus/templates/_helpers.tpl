{{- /* The prefix of every object's name: fullnameOverride, else the release name when it
already says "kubecircus", else <release>-kubecircus. Release "kubecircus" gives
kubecircus-operator, kubecircus-minio, ... */ -}}
{{- define "kubecircus.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- /* The operator's ServiceAccount: the chart's own (operator.serviceAccount.create), or one you made. */ -}}
{{- define "kubecircus.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (printf "%s-operator" (include "kubecircus.fullname" .)) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- $name := required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- if eq $name "default" -}}
{{- fail "operator.serviceAccount.name must not be \"default\": every pod of the namespace would hold the operator's rights" -}}
{{- end -}}
{{- $name -}}
{{- end -}}
{{- end -}}

{{- /* Secrets: the operator's store user, and the store's admin keys (bundled MinIO's root). */ -}}
{{- define "kubecircus.operatorSecret" -}}
{{- default (printf "%s-store-operator" (include "kubecircus.fullname" .)) .Values.objectStore.operatorSecret -}}
{{- end -}}
{{- define "kubecircus.adminSecret" -}}
{{- default (printf "%s-objectstore" (include "kubecircus.fullname" .)) .Values.objectStore.setup.adminSecret -}}
{{- end -}}
{{- define "kubecircus.minioName" -}}
{{- printf "%s-minio" (include "kubecircus.fullname" .) -}}
{{- end -}}

{{- define "kubecircus.labels" -}}
app.kubernetes.io/name: kubecircus
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubecircus.operatorSelector" -}}
app.kubernetes.io/name: kubecircus
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kubecircus.operatorImage" -}}
{{ .Values.operator.image.repository }}:{{ .Values.operator.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "kubecircus.workerImage" -}}
{{ .Values.jobs.workerImage.repository }}:{{ .Values.jobs.workerImage.tag | default .Chart.AppVersion }}
{{- end -}}

{{- /* host:port of the object store: the configured one, or the bundled MinIO's Service. */ -}}
{{- define "kubecircus.storeEndpoint" -}}
{{- if .Values.objectStore.endpoint -}}
{{ .Values.objectStore.endpoint }}
{{- else if .Values.minio.enabled -}}
{{ include "kubecircus.minioName" . }}.{{ .Release.Namespace }}.svc:9000
{{- else -}}
{{ fail "objectStore.endpoint is required when minio.enabled is false" }}
{{- end -}}
{{- end -}}

{{- /* The object store's location, for the operator and the set-up Job. */ -}}
{{- define "kubecircus.storeEnv" -}}
- {name: KUBECIRCUS_STORE_ENDPOINT, value: {{ include "kubecircus.storeEndpoint" . | quote }}}
- {name: KUBECIRCUS_STORE_SECURE, value: {{ .Values.objectStore.secure | quote }}}
- {name: KUBECIRCUS_STORE_REGION, value: {{ .Values.objectStore.region | quote }}}
- {name: KUBECIRCUS_STORE_BUCKET, value: {{ .Values.objectStore.bucket | quote }}}
- {name: KUBECIRCUS_INPUT_BUCKETS, value: {{ join "," .Values.objectStore.inputBuckets | quote }}}
{{- if .Values.objectStore.caSecret }}
- {name: KUBECIRCUS_STORE_CA_FILE, value: /var/run/kubecircus/store-ca/ca.crt}
{{- end }}
{{- end -}}

{{- /* queue.namespaceMaxPriority as "ns=cap,ns=cap" (sorted, so the Deployment only changes when the map does). */ -}}
{{- define "kubecircus.namespaceCaps" -}}
{{- $caps := list -}}
{{- range $ns := keys .Values.queue.namespaceMaxPriority | sortAlpha -}}
{{- $caps = append $caps (printf "%s=%v" $ns (index $.Values.queue.namespaceMaxPriority $ns)) -}}
{{- end -}}
{{- join "," $caps -}}
{{- end -}}

{{- define "kubecircus.gpuNodeSelector" -}}
{{- $pairs := list -}}
{{- range $k := keys .Values.jobs.gpuNodeSelector | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%v" $k (index $.Values.jobs.gpuNodeSelector $k)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
