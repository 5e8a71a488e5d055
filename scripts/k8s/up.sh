#!/usr/bin/env bash
# Starts a real Kubernetes control plane on loopback for the deploy tests: etcd,
# kube-apiserver (RBAC, token auth), kube-controller-manager and kube-scheduler, built by
# build.sh. Writes DIR/kubeconfig (admin) and DIR/*.pid; stop it with down.sh DIR.
#
#   bash scripts/k8s/up.sh BIN_DIR DIR [API_PORT]
#
# WEIR_K8S_APISERVER_ARGS adds flags to kube-apiserver (e.g. short watch timeouts, so clients
# must survive watches ending).
set -euo pipefail
bin=$1
dir=$2
port=${3:-16443}
etcd_port=$((port + 1))
peer_port=$((port + 2))
mkdir -p "$dir/pki"
cd "$dir"
if [ ! -f pki/ca.crt ]; then
  openssl genrsa -out pki/sa.key 2048 2>/dev/null
  openssl rsa -in pki/sa.key -pubout -out pki/sa.pub 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -keyout pki/ca.key -out pki/ca.crt -days 7 -subj /CN=weir-test-ca 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout pki/apiserver.key -out pki/apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' > pki/ext.cnf
  openssl x509 -req -in pki/apiserver.csr -CA pki/ca.crt -CAkey pki/ca.key -CAcreateserial -out pki/apiserver.crt \
    -days 7 -extfile pki/ext.cnf 2>/dev/null
fi
echo 'admin-token,admin,1,"system:masters"' > pki/tokens.csv
cat > kubeconfig <<KC
apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: "https://127.0.0.1:$port", certificate-authority: "$dir/pki/ca.crt"}}]
users: [{name: admin, user: {token: admin-token}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
KC
etcd --name test --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" --initial-cluster "test=http://127.0.0.1:$peer_port" \
  --unsafe-no-fsync --quota-backend-bytes=1073741824 > etcd.log 2>&1 &
echo $! > etcd.pid
"$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
  --secure-port="$port" --insecure-port=0 --tls-cert-file=pki/apiserver.crt --tls-private-key-file=pki/apiserver.key \
  --client-ca-file=pki/ca.crt --token-auth-file=pki/tokens.csv --authorization-mode=RBAC \
  --service-account-key-file=pki/sa.pub --service-account-signing-key-file=pki/sa.key \
  --service-account-issuer=https://kubernetes.default.svc --service-cluster-ip-range=10.96.0.0/24 \
  --allow-privileged=true --kubelet-preferred-address-types=InternalIP --enable-priority-and-fairness=false \
  --profiling=false ${WEIR_K8S_APISERVER_ARGS:-} > apiserver.log 2>&1 &
echo $! > apiserver.pid
for _ in $(seq 1 600); do
  if curl -sf --cacert pki/ca.crt -H 'Authorization: Bearer admin-token' "https://127.0.0.1:$port/readyz" >/dev/null; then
    break
  fi
  sleep 0.1
done
curl -sf --cacert pki/ca.crt -H 'Authorization: Bearer admin-token' "https://127.0.0.1:$port/readyz" >/dev/null \
  || { echo "kube-apiserver did not become ready; see $dir/apiserver.log" >&2; exit 1; }
# The node lifecycle controller is off: the test kubelet reports its own node's readiness.
"$bin/kube-controller-manager" --kubeconfig=kubeconfig --leader-elect=false --port=0 --secure-port=0 \
  --bind-address=127.0.0.1 --controllers='*,-nodelifecycle' --service-account-private-key-file=pki/sa.key \
  --root-ca-file=pki/ca.crt --use-service-account-credentials=false --profiling=false > kcm.log 2>&1 &
echo $! > kcm.pid
"$bin/kube-scheduler" --kubeconfig=kubeconfig --leader-elect=false --port=0 --secure-port=0 --bind-address=127.0.0.1 \
  --profiling=false > scheduler.log 2>&1 &
echo $! > scheduler.pid
